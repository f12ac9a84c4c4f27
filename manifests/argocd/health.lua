-- Argo CD health check for journey.dev/Journey (resource.customizations.health.journey.dev_Journey).
-- Paused as declared is Suspended, not Healthy: it bubbles up to the Application, and
-- `argocd app wait --health` needs `--suspended` to accept it.
local hs = { status = "Progressing", message = "Waiting for the controller" }

local function condition(status, type)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

if obj.status == nil or obj.status.observedGeneration == nil then
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration < obj.metadata.generation then
  hs.message = "Waiting for the controller to observe generation " .. obj.metadata.generation
  return hs
end

local phase = obj.status.phase or "Unknown"
local stalled = condition(obj.status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.reason .. ": " .. (stalled.message or "")
  return hs
end

local reconciling = condition(obj.status, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = reconciling.reason .. ": " .. (reconciling.message or "")
  if phase == "Resuming" and obj.status.resume ~= nil then
    hs.message = "Resuming: released " .. (obj.status.resume.released or 0) .. "/" .. (obj.status.resume.total or 0) .. " held profiles"
  end
  return hs
end

local ready = condition(obj.status, "Ready")
local isReady = ready ~= nil and ready.status == "True"
-- An emergency hold (JourneyHold) is declared intent, not a failure: Suspended with its reason.
local held = condition(obj.status, "Held")
if held ~= nil and held.status == "True" then
  hs.status = "Suspended"
  hs.message = "Held: " .. (held.message or "")
  return hs
end
if isReady and phase == "Paused" then
  hs.status = "Suspended"
  local pause = obj.status.pause or {}
  hs.message = "Paused (" .. (pause.mode or "Hold") .. ") since " .. (pause.since or "?")
  if pause.reason ~= nil then
    hs.message = hs.message .. ": " .. pause.reason
  end
  return hs
end

local healthy = { Live = true, Scheduled = true, Closing = true, Completed = true, Stopped = true, Draft = true }
if isReady and healthy[phase] then
  hs.status = "Healthy"
  hs.message = phase
  return hs
end

hs.message = "Phase " .. phase
return hs
