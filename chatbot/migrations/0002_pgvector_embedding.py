"""On PostgreSQL with pgvector available: an `embedding vector(384)` column on chunks with an HNSW (cosine) index.

Elsewhere (SQLite, MariaDB, PostgreSQL without the extension) nothing happens and the NumPy store serves dense
search from `embedding_f32`. Raw SQL keeps the column out of the ORM, so the model stays the same on every database.
"""

from django.db import migrations

CHUNK_TABLE = "chatbot_knowledgechunk"


def add_vector_column(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        if cursor.fetchone() is None:
            return
        cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
        cursor.execute(f"ALTER TABLE {CHUNK_TABLE} ADD COLUMN IF NOT EXISTS embedding vector(384)")
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS chatbot_chunk_embedding_hnsw ON {CHUNK_TABLE} "
            "USING hnsw (embedding vector_cosine_ops)"
        )


def drop_vector_column(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS chatbot_chunk_embedding_hnsw")
        cursor.execute(f"ALTER TABLE {CHUNK_TABLE} DROP COLUMN IF EXISTS embedding")


class Migration(migrations.Migration):
    dependencies = [("chatbot", "0001_initial")]

    operations = [
        migrations.RunPython(add_vector_column, drop_vector_column, hints={"model_name": "knowledgechunk"}),
    ]
