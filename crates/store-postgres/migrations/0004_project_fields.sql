-- Column discovery: per project, every config/summary field, each kind it takes and how many runs have it,
-- kept exact by triggers so the catalog costs O(distinct keys) to read.

CREATE TABLE project_fields (
    project TEXT COLLATE "C" NOT NULL,
    field   TEXT COLLATE "C" NOT NULL,
    kind    SMALLINT NOT NULL,
    runs    BIGINT NOT NULL,
    PRIMARY KEY (project, field, kind)
);
INSERT INTO project_fields (project, field, kind, runs)
    SELECT project, field, kind, count(*) FROM run_fields GROUP BY project, field, kind;

CREATE FUNCTION trackstack_count_field(p TEXT, f TEXT, k SMALLINT, delta BIGINT) RETURNS void AS $$
BEGIN
    IF delta > 0 THEN
        INSERT INTO project_fields (project, field, kind, runs) VALUES (p, f, k, delta)
            ON CONFLICT (project, field, kind) DO UPDATE SET runs = project_fields.runs + delta;
    ELSE
        UPDATE project_fields SET runs = runs + delta WHERE project = p AND field = f AND kind = k;
        DELETE FROM project_fields WHERE project = p AND field = f AND kind = k AND runs <= 0;
    END IF;
END $$ LANGUAGE plpgsql;

CREATE FUNCTION trackstack_run_fields_counted() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        PERFORM trackstack_count_field(OLD.project, OLD.field, OLD.kind, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM trackstack_count_field(NEW.project, NEW.field, NEW.kind, 1);
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER run_fields_counted_in AFTER INSERT OR DELETE ON run_fields
    FOR EACH ROW EXECUTE FUNCTION trackstack_run_fields_counted();
CREATE TRIGGER run_fields_recounted AFTER UPDATE OF kind ON run_fields
    FOR EACH ROW WHEN (OLD.kind IS DISTINCT FROM NEW.kind) EXECUTE FUNCTION trackstack_run_fields_counted();
