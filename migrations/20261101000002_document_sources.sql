-- Where documents come from: one row per (doc_type, source_name), with running totals.
CREATE TABLE document_sources (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    doc_type     doc_type    NOT NULL,
    source_name  text        NOT NULL,
    version      text,
    config       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    enabled      boolean     NOT NULL DEFAULT true,
    last_updated timestamptz,
    total_docs   integer     NOT NULL DEFAULT 0,
    total_tokens bigint      NOT NULL DEFAULT 0,
    CONSTRAINT document_sources_doc_type_source_name_key UNIQUE (doc_type, source_name),
    CONSTRAINT document_sources_total_docs_check CHECK (total_docs >= 0),
    CONSTRAINT document_sources_total_tokens_check CHECK (total_tokens >= 0)
);

CREATE INDEX document_sources_enabled_idx ON document_sources (enabled) WHERE enabled;
