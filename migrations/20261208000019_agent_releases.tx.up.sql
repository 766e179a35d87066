-- Agent releases: one row per version and platform, the binary in the
-- agent_releases Object Store (object), the record signed by a release
-- key (signed_at, kid, sig as base64). source is "upload" or "built-in"
-- (a build the server was made with, offered at its start).
CREATE TABLE agent_releases (
    version     TEXT   NOT NULL,
    os          TEXT   NOT NULL,
    arch        TEXT   NOT NULL,
    sha256      TEXT   NOT NULL,
    size        BIGINT NOT NULL,
    object      TEXT   NOT NULL,
    signed_at   BIGINT NOT NULL,
    kid         TEXT   NOT NULL,
    sig         TEXT   NOT NULL,
    source      TEXT   NOT NULL DEFAULT 'upload',
    uploaded_by TEXT   NOT NULL DEFAULT '',
    uploaded_at BIGINT NOT NULL,
    PRIMARY KEY (version, os, arch)
);
