-- Roll the version back (spec.rollback). The operator does it through the cloud's own
-- rollback and does not push this version again until the spec names another one.
obj.spec.rollback = true
return obj
