-- Actions Argo CD offers for an EasServiceRollout. An EAS rollout has no manual gates
-- (its progress is spec.strategy.partition, kept in Git) and no rollback field, so only
-- pause, resume and retry are offered.
local actions = {}
local paused = obj.spec ~= nil and obj.spec.paused == true
actions["pause"] = {["disabled"] = paused}
actions["resume"] = {["disabled"] = not paused}

local stuck = false
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if (c.type == "Degraded" or c.type == "Stalled") and c.status == "True" then
      stuck = true
    end
  end
end
actions["retry"] = {["disabled"] = not stuck}
return actions
