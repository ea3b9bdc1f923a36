-- Let a paused rollout go on (spec.paused).
obj.spec.paused = false
return obj
