"""``portal backup`` and ``portal restore`` (DESIGN §9): one consistent set of the database,
the blobs, the keyring, the audit signing key and the secret key, with a manifest that lists
every file with its SHA-256 and is signed with the audit key. Taken while the portal serves;
restored into an empty database and an empty instance folder.

A set is a directory (0700, every file 0600)::

    manifest.json            the signed manifest (``portal.backup.manifest``)
    database.sqlite | database.pgdump
    blobs/ab/ab12…           the directory blob store's blobs the database names
    keys/keyring.json        the KEKs (with --keys-separately: in a second directory)
    keys/audit-signing.pem
    keys/secret_key          (recovery codes are hashed with it)

The order that leaves nothing referring to what the set lacks (``portal.backup.take``):

1. every blob in the store is copied (blobs are written once and never change);
2. under the keyring's lock (no rotation or retirement meanwhile) the database snapshot is
   taken, the keyring copied, and every KEK the snapshot's rows use (the registry of
   encrypted things, ``portal.encryption.registry``) must be in the copy;
3. the blobs the snapshot names that step 1 missed (uploaded meanwhile) are copied; blobs
   copied in step 1 that the snapshot does not name (deleted, or orphans) are dropped.
   A blob the snapshot names that is gone by step 3 was deleted after the snapshot: the
   snapshot is taken again (a few times, then the backup fails loudly).
"""
