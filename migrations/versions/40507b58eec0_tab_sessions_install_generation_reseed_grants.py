"""tab sessions: install generation, reseed grants

Revision ID: 40507b58eec0
Revises: 9b7f26d977a1
Create Date: 2026-12-01 21:38:25.239710

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '40507b58eec0'
down_revision = '9b7f26d977a1'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('reseed_grants',
    sa.Column('handle', sa.String(length=64), nullable=False),
    sa.Column('portal_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('authorization_encrypted', sa.Text(), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['portal_id'], ['portals.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('handle')
    )
    with op.batch_alter_table('reseed_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reseed_grants_portal_id'), ['portal_id'], unique=False)

    with op.batch_alter_table('portals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('install_generation', sa.Integer(), server_default='1', nullable=False))


def downgrade():
    with op.batch_alter_table('portals', schema=None) as batch_op:
        batch_op.drop_column('install_generation')

    with op.batch_alter_table('reseed_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reseed_grants_portal_id'))

    op.drop_table('reseed_grants')
