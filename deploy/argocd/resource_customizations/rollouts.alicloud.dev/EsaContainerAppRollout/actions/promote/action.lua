-- Approve the next manual gate of this version: spec.promotion names the version and the
-- step index (status.currentStep while held at a gate).
local spec = obj.spec
if spec.steps == nil then
  error("spec.steps is not set: a fixed percentage or region publish has no gate to promote")
end
local approved = -1
if spec.promotion ~= nil and spec.promotion.versionId == spec.versionId then
  approved = spec.promotion.step
end
local step = approved + 1
if obj.status ~= nil and obj.status.currentStep ~= nil and obj.status.currentStep > step then
  step = obj.status.currentStep
end
if step > #spec.steps - 1 then
  step = #spec.steps - 1
end
spec.promotion = {["versionId"] = spec.versionId, ["step"] = step}
return obj
