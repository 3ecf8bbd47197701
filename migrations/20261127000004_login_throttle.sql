-- Failed-login counters, per account (email, lower-cased) and per source IP, in fixed
-- windows. Kept in the database so every Lambda environment sees the same counts.
CREATE TABLE login_throttle (
    key          text PRIMARY KEY CHECK (key ~ '^(email|ip):'),
    failures     integer NOT NULL CHECK (failures >= 0),
    window_start timestamptz NOT NULL
);
