-- Approve every manual gate of this canary version (timed pauses still run their time).
local canary = obj.spec.canary
if canary == nil or canary.steps == nil then
  error("spec.canary is not set: a fixed split has no gate to promote")
end
canary.promotion = {["version"] = canary.canaryVersion, ["step"] = #canary.steps - 1}
return obj
