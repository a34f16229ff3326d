-- wrk script: POST /v1/feedback with a distinct token per request (read from the file given after --)
-- and a unique submissionId, counting the 200s so the bench can check none was lost.
threads = {}
local tokens, counter, serial = {}, 0, 0
accepted = 0  -- global: done() reads it from each thread

function setup(thread)
  serial = serial + 1
  thread:set("tid", serial)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  nthreads = tonumber(args[2])
  run = args[3]  -- distinct per wrk run, so a warm-up's submission ids are not retried as duplicates
end

function request()
  counter = counter + 1
  local token = tokens[((counter - 1) * nthreads + (tid - 1)) % #tokens + 1]
  local body = string.format('{"token":"%s","rating":"%s","submissionId":"bench-%s-%d-%d"}', token,
                             (counter % 3 == 0) and "down" or "up", run, tid, counter)
  return wrk.format("POST", "/v1/feedback", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status == 200 then accepted = accepted + 1 end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("accepted") end
  io.write(string.format("ACCEPTED %d\n", total))
  io.write(string.format("REQUESTS %d %f\n", summary.requests, summary.duration / 1e6))
  io.write(string.format("P50 %f\nP99 %f\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
  io.write(string.format("ERRORS %d\n", summary.errors.status + summary.errors.connect + summary.errors.read +
                                        summary.errors.write + summary.errors.timeout))
end
