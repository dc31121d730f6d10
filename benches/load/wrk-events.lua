-- wrk script: POSTs unique Open Messaging events to handover-receiver, 8 agent events per
-- conversation (user.start and user.end TRANSFER of 4 legs), each with its own envelope id, so no
-- request is a duplicate and every one runs the engine and a store commit. Conversation,
-- participant, session and envelope ids are UUID-shaped, as Genesys' and EventBridge's are (and
-- as the Rust generator's are): the service keeps a UUID in 16 bytes and anything else as text.
--   GENESYS_EVENTBRIDGE_HANDOVER_API_KEY=bench-key wrk -t2 -c64 -d10s -s benches/load/wrk-events.lua http://127.0.0.1:8080

local key = os.getenv("GENESYS_EVENTBRIDGE_HANDOVER_API_KEY") or "bench-key"
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local template = [[{"version":"0","id":"%s","detail-type":"v2.detail.events.conversation.{id}.%s",
"source":"aws.partner/genesys.com/cloud/3f2c9d1e-7a44-4c1b-8e0f-5b6a7c8d9e01/bench-org",
"account":"123456789012","time":"2025-11-04T10:15:42Z","region":"eu-central-1","resources":[],
"detail":{"topicName":"v2.detail.events.conversation.%s.%s","version":"2",
"eventBody":{"eventTime":%d,"conversationId":"%s","participantId":"%s","sessionId":"%s",
%s"mediaType":"MESSAGE","provider":"PureCloud Messaging","direction":"INBOUND",
"addressTo":"cognigy-user-5f0d8c2e","addressFrom":"b7c1e2d3-0f4a-4b5c-9d6e-7f8091a2b3c4","messageType":"OPEN",
"userId":"1b2c3d4e-5f60-4718-92a3-b4c5d6e7f809","queueId":"0a1b2c3d-4e5f-4607-8899-aabbccddeeff"},
"metadata":{"CorrelationId":"c4d5e6f7-0819-4a2b-b3c4-d5e6f708192a"},"timestamp":"2025-11-04T10:15:41.907Z"}}]]

local counter = 0

-- Distinct per wrk run, so that runs against one long-running service never repeat an id (a
-- repeat is a duplicate, a cheaper path): WRK_RUN when set (the benchmark numbers its runs),
-- else the clock's seconds.
local run = (tonumber(os.getenv("WRK_RUN") or "") or os.time()) % 65536

-- A UUID-shaped id, distinct per run, wrk thread, kind (0 conversation, 1 participant,
-- 2 session, 3 envelope), leg and number.
function uuid(kind, n, leg)
  return string.format("%04x%04x-%04x-4000-800%d-%012x", run, tid, leg or 0, kind, n)
end

function request()
  counter = counter + 1
  local n = math.floor(counter / 8)
  local conversation = uuid(0, n)
  local leg = math.floor((counter % 8) / 2)
  local topic, extra = "user.start", ""
  if counter % 2 == 1 then
    topic = "user.end"
    extra = '"disconnectType":"TRANSFER","interactingDurationMs":120000,'
  end
  local body = string.format(template, uuid(3, counter), topic, conversation, topic,
    1762250000000 + counter, conversation, uuid(1, n, leg), uuid(2, n, leg), extra)
  return wrk.format("POST", "/handover/genesysCloudOM",
    { ["Authorization"] = key, ["Content-Type"] = "application/json" }, body)
end

function done(summary, latency, requests)
  local statuses = summary.errors.status
  io.write(string.format("events/s %.0f  p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms  non-2xx %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, statuses))
end
