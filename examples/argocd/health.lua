-- Argo CD health check for bucketwarden.io/ProtectedBucket.
-- Healthy: Ready=True for the current generation (also when Verified=Unknown Inconclusive, which never
-- blocks Ready: the message says so). Degraded: Ready=False for a reason that retrying cannot fix (only a
-- spec or AWS-side change helps). Progressing: everything else, including retryable failures such as
-- AwsUnavailable, which the operator keeps retrying.
-- The reasons are bucketwarden.reasons.READY_REASONS; tests/chart/test_argocd_health.py keeps them equal.
local terminalReasons = {
  InvalidSpec = true,
  Conflict = true,
  NotAuthorized = true,
  AdoptionRefused = true,
  VerificationFailed = true,
  RoleNotFound = true,
  CrossAccountRole = true,
  BucketNotFound = true,
  AccessDenied = true,
  WrongBucketOwner = true,
  WrongRegion = true,
  NoRegion = true,
  NoCredentials = true,
  MalformedPolicy = true,
  PolicyTooLarge = true,
  UnsupportedCondition = true,
  InvalidRequest = true,
  AwsError = true,
  SourceListNotFound = true,
  Contended = true,
  ManagedByACK = true,
  ACKBucketNotFound = true,
  ACKBucketMismatch = true,
  ACKPatchFailed = true,
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
local verified = nil
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    elseif condition.type == "Verified" then
      verified = condition
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
  if verified ~= nil and verified.status == "Unknown" and verified.reason == "Inconclusive" then
    hs.message = "verification is inconclusive"
    if verified.message ~= nil and verified.message ~= "" then
      hs.message = hs.message .. ": " .. verified.message
    end
  end
elseif ready.status == "False" and terminalReasons[reason] then
  hs.status = "Degraded"
  hs.message = detail
elseif detail ~= "" then
  hs.message = detail
end
return hs
