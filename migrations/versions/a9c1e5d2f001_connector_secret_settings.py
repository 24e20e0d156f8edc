"""connector secret settings: which setting codes of a connector are secret

Revision ID: a9c1e5d2f001
Revises: 40507b58eec0
Create Date: 2026-12-02 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a9c1e5d2f001'
down_revision = '40507b58eec0'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('connector_secret_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('portal_id', sa.Integer(), nullable=False),
    sa.Column('connector_id', sa.Integer(), nullable=False),
    sa.Column('codes', sa.JSON(), nullable=False),
    sa.Column('public_codes', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['portal_id'], ['portals.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('portal_id', 'connector_id')
    )
    with op.batch_alter_table('connector_secret_settings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_connector_secret_settings_portal_id'), ['portal_id'], unique=False)


def downgrade():
    with op.batch_alter_table('connector_secret_settings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_connector_secret_settings_portal_id'))

    op.drop_table('connector_secret_settings')
