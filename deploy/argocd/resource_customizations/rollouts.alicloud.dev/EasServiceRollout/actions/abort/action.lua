-- Send every replica back to the previous version: partition "100%" approved for the
-- version status shows. To drop the new version, put the previous serviceConfig back.
if obj.status == nil or obj.status.configVersion == nil or obj.spec.serviceConfig == nil then
  error("no serviceConfig version to abort yet (status.configVersion)")
end
local generation = obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration ~= generation then
  error("the operator has not acted on the latest spec yet: status.configVersion may name the previous serviceConfig")
end
obj.spec.promotion = {["version"] = obj.status.configVersion, ["partition"] = "100%"}
return obj
