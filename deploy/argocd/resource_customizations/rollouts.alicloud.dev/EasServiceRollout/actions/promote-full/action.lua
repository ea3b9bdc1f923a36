-- Approve the one gate of this serviceConfig version: partition "0" (every replica on it)
-- for the version status shows. The next serviceConfig starts again at
-- spec.strategy.partition.
if obj.status == nil or obj.status.configVersion == nil or obj.spec.serviceConfig == nil then
  error("no serviceConfig version to approve yet (status.configVersion)")
end
local generation = obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration ~= generation then
  error("the operator has not acted on the latest spec yet: status.configVersion may name the previous serviceConfig")
end
obj.spec.promotion = {["version"] = obj.status.configVersion, ["partition"] = "0"}
return obj
