-- Password guesses are counted per account (its id), whatever spelling of the email found
-- it, and password changes share that budget; unknown emails keep an email key.
ALTER TABLE login_throttle DROP CONSTRAINT login_throttle_key_check;
ALTER TABLE login_throttle ADD CONSTRAINT login_throttle_key_check CHECK (key ~ '^(email|ip|user):');
