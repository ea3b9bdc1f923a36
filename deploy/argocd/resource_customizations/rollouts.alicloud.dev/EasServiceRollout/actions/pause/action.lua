-- Hold the rollout where it is (spec.paused). A spec patch: GitOps shows it as drift.
obj.spec.paused = true
return obj
