-- Argo CD health check for bucketwarden.io/ProtectedBucket.
-- Healthy: Ready=True for the current generation. Degraded: Ready=False for a reason that retrying
-- cannot fix (only a spec or AWS-side change helps). Progressing: everything else, including retryable
-- failures such as AwsUnavailable, which the operator keeps retrying.
local terminalReasons = {
  Conflict = true,
  InvalidSpec = true,
  RoleNotFound = true,
  BucketNotFound = true,
  AccessDenied = true,
  VerificationFailed = true,
  PolicyTooLarge = true,
  MalformedPolicy = true,
  NotAuthorized = true,
  CrossAccountRole = true,
}

local hs = { status = "Progressing", message = "Waiting for bucketwarden to reconcile the bucket policy" }

if obj.status == nil then
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for bucketwarden to observe generation " .. tostring(generation)
  return hs
end

local ready = nil
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    end
  end
end
if ready == nil then
  return hs
end

local reason = ready.reason or ""
local message = ready.message or ""
local detail = reason
if message ~= "" then
  detail = reason .. ": " .. message
end

if ready.status == "True" then
  hs.status = "Healthy"
  if message ~= "" then
    hs.message = message
  else
    hs.message = "Bucket policy enforced"
  end
elseif ready.status == "False" and terminalReasons[reason] then
  hs.status = "Degraded"
  hs.message = detail
elseif detail ~= "" then
  hs.message = detail
end
return hs
