-- Ask the operator to look again now after Degraded or Stalled: spec.retry is a token whose
-- every change is a new generation, so the operator reconciles at once.
local n = obj.spec.retry
if n == nil then
  n = 0
end
obj.spec.retry = n + 1
return obj
