-- no-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS documents_embedding_hnsw_idx ON documents USING hnsw ((embedding::halfvec(3072)) halfvec_cosine_ops);
