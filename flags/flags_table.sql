-- The flag lists, created typed here and filled by ews.warehouse.replace_rows.
CREATE TABLE IF NOT EXISTS flags_pupil_term (
    run_id VARCHAR NOT NULL,
    term VARCHAR NOT NULL,
    as_of_date DATE,
    model_id VARCHAR,
    pupil_id VARCHAR NOT NULL,
    network_id VARCHAR NOT NULL,
    school_code VARCHAR,
    grade SMALLINT,
    status VARCHAR NOT NULL,          -- 'ny', 'fortsat', 'ikke_laengere'
    list_rank INTEGER,                -- 1 = highest risk on the network's list; NULL if not on it
    risk DOUBLE,                      -- this term's calibrated risk (NULL: not scored here)
    tier VARCHAR,
    tier_step VARCHAR,
    previous_risk DOUBLE,
    risk_change DOUBLE,
    trajectory VARCHAR,               -- 'stigende', 'faldende', 'stabil', 'ingen_tidligere'
    path_pattern VARCHAR,             -- 'tidlig_starter', 'sen_starter' or NULL
    reasons_da VARCHAR NOT NULL,      -- JSON list of reasons (Danish text, English text, values)
    context_da VARCHAR NOT NULL,      -- JSON list of context items (not reasons)
    reason_families VARCHAR NOT NULL, -- JSON list of families of the reasons
    disciplines VARCHAR NOT NULL,     -- JSON list of discipline codes
    review_required BOOLEAN NOT NULL,
    in_network BOOLEAN NOT NULL,      -- false: no longer scored in this network (not named in exports)
    selection VARCHAR NOT NULL,       -- how the list was chosen (mode, capacity, threshold)
    list_basis VARCHAR NOT NULL       -- 'model', or 'regel:<rule>' when the model did not pass the gate
);
-- warehouses written before list_basis existed: their lists were the model's
ALTER TABLE flags_pupil_term ADD COLUMN IF NOT EXISTS list_basis VARCHAR DEFAULT 'model';
