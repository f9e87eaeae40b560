-- pgvector for the 3072-dimension embeddings, and the document kinds.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TYPE doc_type AS ENUM ('guide', 'reference', 'tutorial', 'api', 'changelog');
