-- The documents with their embeddings. vector(3072) stores the full-precision embedding; the
-- ANN index (next migration) goes through halfvec because vector indexes stop at 2000 dims.
CREATE TABLE documents (
    id          uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    doc_type    doc_type     NOT NULL,
    source_name text         NOT NULL,
    doc_path    text         NOT NULL,
    content     text         NOT NULL,
    metadata    jsonb        NOT NULL DEFAULT '{}'::jsonb,
    embedding   vector(3072),
    token_count integer      NOT NULL DEFAULT 0,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    updated_at  timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT documents_doc_type_source_name_doc_path_key UNIQUE (doc_type, source_name, doc_path),
    CONSTRAINT documents_token_count_check CHECK (token_count >= 0),
    CONSTRAINT documents_source_fkey FOREIGN KEY (doc_type, source_name)
        REFERENCES document_sources (doc_type, source_name) ON UPDATE CASCADE ON DELETE CASCADE
);

CREATE INDEX documents_source_idx ON documents (doc_type, source_name);
CREATE INDEX documents_created_at_idx ON documents (created_at);
CREATE INDEX documents_metadata_idx ON documents USING gin (metadata jsonb_path_ops);

CREATE FUNCTION documents_touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER documents_touch_updated_at
    BEFORE UPDATE ON documents
    FOR EACH ROW EXECUTE FUNCTION documents_touch_updated_at();
