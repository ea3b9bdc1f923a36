-- Argo CD health check for EsaRoutineRollout (rollouts.alicloud.dev). It reads only the conditions
-- the operator writes and needs no Lua library beyond base, so it runs as a custom check
-- in argocd-cm without resource.customizations.useOpenLibs.
local hs = {}

local function condition(name)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == name then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

local function text(c)
  if c == nil then
    return ""
  end
  local m = c.message
  if m == nil or m == "" then
    return c.reason or ""
  end
  return m
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on generation " .. tostring(generation)
  return hs
end

-- A person is needed: Degraded (and kstatus's Stalled) is True.
local degraded = condition("Degraded")
local stalled = condition("Stalled")
if is_true(degraded) or is_true(stalled) then
  local c = degraded
  if not is_true(c) then
    c = stalled
  end
  hs.status = "Degraded"
  hs.message = (c.reason or "Degraded") .. ": " .. text(c)
  return hs
end

local ready = condition("Ready")
local progressing = condition("Progressing")
local paused = condition("Paused")

if is_true(ready) then
  hs.status = "Healthy"
  hs.message = text(ready)
  return hs
end

if is_true(paused) then
  hs.status = "Suspended"
  hs.message = "Paused by spec.paused: " .. text(ready)
  return hs
end

-- Held at a manual gate: someone has to promote it (the promote action).
if progressing ~= nil and progressing.reason == "WaitingForPromotion" then
  hs.status = "Suspended"
  hs.message = text(progressing)
  return hs
end

hs.status = "Progressing"
hs.message = text(progressing)
return hs
