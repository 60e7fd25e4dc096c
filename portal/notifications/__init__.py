"""Notices to people, in the portal and by e-mail: that something happened on which case,
never the content. Below the case features (reports, dialogue, review, informs all send them);
who may receive one is the policy's decision."""
