"""labels fixed when material is written (DESIGN §3 rule 7)

Revision ID: 0009
Revises: 0008

Every version, message, note, attachment and inform keeps the classification and
compartments it was written with; a report's compartments become the union over its
versions. Existing rows get the labels they were read under until now (the case's current
technology and classification), which is the best knowledge there is: no row changes readers.

Columns are added with ALTER TABLE ... ADD COLUMN on SQLite too (no batch rebuild), so the
report tally triggers of 0008 stay in place.
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('reports', sa.Column('compartments', sa.String(length=200), server_default='', nullable=False))
    op.add_column('report_versions', sa.Column('classification', sa.String(length=16), server_default='restricted',
                                               nullable=False))
    op.add_column('messages', sa.Column('compartments', sa.String(length=200), server_default='', nullable=False))
    op.add_column('attachments', sa.Column('compartments', sa.String(length=200), server_default='', nullable=False))
    op.add_column('attachments', sa.Column('version', sa.Integer(), nullable=True))
    op.add_column('informs', sa.Column('classification', sa.String(length=16), server_default='restricted',
                                       nullable=False))
    op.add_column('informs', sa.Column('compartments', sa.String(length=200), server_default='', nullable=False))

    op.create_index('ix_reports_multi_compartment', 'reports', ['id'], unique=False,
                    sqlite_where=sa.text("compartments LIKE '% %'"),
                    postgresql_where=sa.text("compartments LIKE '% %'"))
    # A submitted case: the union of its versions' technologies and its current one.
    op.execute("""
        UPDATE reports SET compartments = (
            SELECT t.code FROM technologies t WHERE t.id = reports.technology_id)
        WHERE version_count > 0 AND technology_id IS NOT NULL""")
    bind = op.get_bind()
    rows = bind.execute(sa.text("""
        SELECT v.report_id, t.code FROM report_versions v JOIN technologies t ON t.id = v.technology_id
        JOIN reports r ON r.id = v.report_id WHERE v.technology_id <> r.technology_id""")).all()
    extra: dict[int, set[str]] = {}
    for report_id, code in rows:
        extra.setdefault(report_id, set()).add(code)
    for report_id, codes in extra.items():
        current = bind.execute(sa.text("SELECT compartments FROM reports WHERE id = :id"), {"id": report_id}).scalar()
        union = " ".join(sorted(set((current or "").split()) | codes))
        bind.execute(sa.text("UPDATE reports SET compartments = :c WHERE id = :id"), {"c": union, "id": report_id})

    op.execute("UPDATE report_versions SET classification = "
               "(SELECT r.classification FROM reports r WHERE r.id = report_versions.report_id)")
    for table in ("messages", "attachments"):
        op.execute(f"""
            UPDATE {table} SET compartments = COALESCE((
                SELECT CASE WHEN r.compartments <> '' THEN r.compartments ELSE t.code END
                FROM reports r LEFT JOIN technologies t ON t.id = r.technology_id
                WHERE r.id = {table}.report_id), '')""")
    op.execute("""
        UPDATE informs SET
            classification = (SELECT r.classification FROM reports r WHERE r.id = informs.report_id),
            compartments = COALESCE((
                SELECT CASE WHEN r.compartments <> '' THEN r.compartments ELSE t.code END
                FROM reports r LEFT JOIN technologies t ON t.id = r.technology_id
                WHERE r.id = informs.report_id), '')""")
    # A report's own files uploaded before its last submission belong to that version: frozen.
    op.execute("""
        UPDATE attachments SET version = (SELECT r.version_count FROM reports r WHERE r.id = attachments.report_id)
        WHERE message_id IS NULL AND EXISTS (
            SELECT 1 FROM reports r WHERE r.id = attachments.report_id AND r.version_count > 0
            AND r.submitted_at IS NOT NULL AND attachments.created_at <= r.submitted_at)""")


def downgrade() -> None:
    op.drop_index('ix_reports_multi_compartment', table_name='reports')
    # ALTER TABLE ... DROP COLUMN on both databases (SQLite 3.35+): no batch rebuild, so no
    # table is dropped under its foreign keys and the tally triggers of 0008 stay.
    for table, column in (("informs", "compartments"), ("informs", "classification"),
                          ("attachments", "version"), ("attachments", "compartments"),
                          ("messages", "compartments"), ("report_versions", "classification"),
                          ("reports", "compartments")):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
