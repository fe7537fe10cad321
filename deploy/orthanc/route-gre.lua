-- Orthanc auto-routing for qsm-monitor: forward every stable multi-echo gradient-echo MR series
-- (the raw input of QSM) to qsm-monitor, and nothing else.
--
-- A series is forwarded when it is MR, ORIGINAL (not derived: no SWI minIP, no MPR, none of
-- qsm-monitor's own results sent back here), a gradient echo without inversion or EPI readout,
-- and has at least two distinct echo times. Classic single-frame series carry this in
-- ScanningSequence (0018,0020) and EchoTime (0018,0081); Enhanced MR objects in
-- EchoPulseSequence / EchoPlanarPulseSequence (0018,9008 / 0018,9018) and the per-frame
-- EffectiveEchoTime (0018,9082). Magnitude and phase series of one scan are forwarded alike.
--
-- Configuration, in Orthanc's JSON configuration (the script itself is never edited):
--   "DicomModalities": { "qsm-monitor": [ "QSMMON", "qsm-monitor", 11112 ] },
--   "QsmMonitorRouting": { "Modality": "qsm-monitor", "MinimumEchoes": 2 }
-- "Modality" names the DicomModalities entry to send to. The series is sent by an asynchronous
-- Orthanc job (visible and retryable under /jobs), so a slow peer never blocks this script.

local function RoutingSettings()
  local routing = GetOrthancConfiguration()['QsmMonitorRouting'] or {}
  return routing['Modality'] or 'qsm-monitor', tonumber(routing['MinimumEchoes'] or 2)
end

-- DICOM multi-valued strings arrive as one string with backslash separators.
local function HasValue(multiValued, wanted)
  for value in string.gmatch(multiValued or '', '[^\\]+') do
    if value == wanted then
      return true
    end
  end
  return false
end

local function FirstValue(multiValued)
  return string.match(multiValued or '', '^[^\\]*')
end

local function AddEchoTime(echoTimes, value)
  local ms = tonumber(value)
  if ms ~= nil then
    echoTimes[string.format('%.3f', ms)] = true
  end
end

-- Returns false when the instance disqualifies the series; collects its echo times otherwise.
local function CollectGradientEcho(tags, echoTimes)
  if FirstValue(tags['ImageType']) ~= 'ORIGINAL' then
    return false
  end
  local classic = tags['ScanningSequence']
  if classic ~= nil then
    if not HasValue(classic, 'GR') or HasValue(classic, 'IR') or HasValue(classic, 'EP') then
      return false
    end
    AddEchoTime(echoTimes, tags['EchoTime'])
    return true
  end
  if tags['EchoPulseSequence'] ~= 'GRADIENT' or tags['EchoPlanarPulseSequence'] == 'YES' then
    return false
  end
  for _, frame in ipairs(tags['PerFrameFunctionalGroupsSequence'] or {}) do
    for _, echo in ipairs(frame['MREchoSequence'] or {}) do
      AddEchoTime(echoTimes, echo['EffectiveEchoTime'])
    end
  end
  return true
end

local function IsMultiEchoGradientEcho(seriesId, minimumEchoes)
  local instances = ParseJson(RestApiGet('/series/' .. seriesId .. '/instances-tags?simplify'))
  local echoTimes, count = {}, 0
  for _, tags in pairs(instances) do
    if not CollectGradientEcho(tags, echoTimes) then
      return false
    end
  end
  for _ in pairs(echoTimes) do
    count = count + 1
  end
  return count >= minimumEchoes
end

function OnStableSeries(seriesId, tags, metadata)
  if tags['Modality'] ~= 'MR' then
    return
  end
  local modality, minimumEchoes = RoutingSettings()
  if IsMultiEchoGradientEcho(seriesId, minimumEchoes) then
    print('qsm-monitor routing: forwarding series ' .. seriesId .. ' to ' .. modality)
    local request = { Resources = { seriesId }, Asynchronous = true }
    RestApiPost('/modalities/' .. modality .. '/store', DumpJson(request, true))
  end
end
