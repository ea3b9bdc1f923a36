-- Actions Argo CD offers for an EsaContainerAppRollout: pause, resume, promote (the next manual
-- gate of this version), promote-full (every gate of this version), abort (roll back) and
-- retry. Each is a spec patch; the operator only reads it.
local actions = {}
local spec = obj.spec or {}
local paused = spec.paused == true
actions["pause"] = {["disabled"] = paused}
actions["resume"] = {["disabled"] = not paused}

local waiting_at_gate = false
local stuck = false
local ready = false
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Progressing" and c.status == "True" and c.reason == "WaitingForPromotion" then
      waiting_at_gate = true
    end
    if (c.type == "Degraded" or c.type == "Stalled") and c.status == "True" then
      stuck = true
    end
    if c.type == "Ready" and c.status == "True" then
      ready = true
    end
  end
end

local steps = obj.spec.steps
local stepped = steps ~= nil and spec.rollback ~= true
actions["promote"] = {["disabled"] = not (stepped and waiting_at_gate)}
actions["promote-full"] = {["disabled"] = not stepped or ready}
actions["abort"] = {["disabled"] = spec.rollback == true}
actions["retry"] = {["disabled"] = not stuck}
return actions
