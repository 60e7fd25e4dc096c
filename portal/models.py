"""Imports every model so that Base.metadata is complete (Alembic, the schema test)."""
from portal.access.models import Clearance, clearance_compartments  # noqa: F401
from portal.audit.models import AuditEvent  # noqa: F401
from portal.auth.models import GbizLink, Invitation, LoginFailure, RecoveryCode, User, UserSession  # noqa: F401
from portal.catalogue.models import Technology  # noqa: F401
from portal.db import Base  # noqa: F401
from portal.encryption.models import KekLease, KekRetirement  # noqa: F401
from portal.mail.models import OutboxMessage  # noqa: F401
from portal.orgs.models import Organisation  # noqa: F401
from portal.reports.models import GroupACountry, ReferenceCounter, Report, ReportEvent, ReportTally, ReportVersion  # noqa: F401
from portal.attachments.models import Attachment, BlobChunk, DataKey  # noqa: F401
from portal.dialogue.models import Message, ReadMark  # noqa: F401
from portal.review.models import JobItem, JobRun  # noqa: F401
from portal.notifications.models import Notification  # noqa: F401
from portal.informs.models import Inform, InformEvent  # noqa: F401
from portal.auth.tokens import ApiToken  # noqa: F401
from portal.api.models import IdempotencyRecord  # noqa: F401
