-- Actions Argo CD offers for an EasServiceRollout: pause, resume and retry; and, for a
-- partition rollout of a serviceConfig whose version the operator shows
-- (status.configVersion), its one gate per version: promote and promote-full approve
-- partition "0" for that version, abort approves "100%" (every replica on the previous
-- version). A batch rollout goes on by itself.
local actions = {}
local spec = obj.spec or {}
local paused = spec.paused == true
actions["pause"] = {["disabled"] = paused}
actions["resume"] = {["disabled"] = not paused}

local stuck = false
local version = nil
if obj.status ~= nil then
  version = obj.status.configVersion
  if obj.status.conditions ~= nil then
    for _, c in ipairs(obj.status.conditions) do
      if (c.type == "Degraded" or c.type == "Stalled") and c.status == "True" then
        stuck = true
      end
    end
  end
end
actions["retry"] = {["disabled"] = not stuck}

local gated = spec.strategy ~= nil and spec.strategy.partition ~= nil
  and spec.serviceConfig ~= nil and version ~= nil
local approved = ""
if spec.promotion ~= nil and spec.promotion.version == version then
  approved = spec.promotion.partition
end
actions["promote"] = {["disabled"] = not gated or approved == "0"}
actions["promote-full"] = {["disabled"] = not gated or approved == "0"}
actions["abort"] = {["disabled"] = not gated or approved == "100%"}
return actions
