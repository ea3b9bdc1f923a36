-- Approve the next manual gate of this canary version: spec.canary.promotion names the
-- version and the step index (status.currentStep while held at a gate).
local canary = obj.spec.canary
if canary == nil or canary.steps == nil then
  error("spec.canary is not set: a fixed split has no gate to promote")
end
local approved = -1
if canary.promotion ~= nil and canary.promotion.version == canary.canaryVersion then
  approved = canary.promotion.step
end
local step = approved + 1
if obj.status ~= nil and obj.status.currentStep ~= nil and obj.status.currentStep > step then
  step = obj.status.currentStep
end
if step > #canary.steps - 1 then
  step = #canary.steps - 1
end
canary.promotion = {["version"] = canary.canaryVersion, ["step"] = step}
return obj
