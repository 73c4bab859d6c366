-- wrk script of the benchmark harness: cycles through the requests of a file and prints one
-- summary line as JSON when done (the harness parses it).
--
-- Usage: wrk ... -s requests.lua <url> -- <requests file>
-- The file holds tab-separated lines: `header<TAB>Name<TAB>Value` first, then
-- `request<TAB>METHOD<TAB>PATH<TAB>BODY` (BODY may be empty). Each thread starts at its own
-- place in the list, so the threads do not ask for the same thing at the same time.

local prepared = {}
local position = 0
local threads_started = 0

local function fields(line)
  local out = {}
  for part in (line .. "\t"):gmatch("([^\t]*)\t") do
    out[#out + 1] = part
  end
  return out
end

function setup(thread)
  thread:set("thread_number", threads_started)
  threads_started = threads_started + 1
end

function init(args)
  local headers, entries = {}, {}
  for line in io.lines(args[1]) do
    local f = fields(line)
    if f[1] == "header" then
      headers[f[2]] = f[3]
    elseif f[1] == "request" then
      entries[#entries + 1] = f
    end
  end
  for _, f in ipairs(entries) do
    local body = f[4] ~= "" and f[4] or nil
    prepared[#prepared + 1] = wrk.format(f[2], f[3], headers, body)
  end
  assert(#prepared > 0, "no request in " .. args[1])
  position = (thread_number * 7919) % #prepared
end

function request()
  position = position % #prepared + 1
  return prepared[position]
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_SUMMARY {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, '
      .. '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, '
      .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read,
    errors.write, errors.status, errors.timeout, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
