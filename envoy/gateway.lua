-- Lua filter of the JSON gateway (see envoy.yaml.in). It sits before the gRPC-JSON transcoder, so
-- on responses it sees the transcoder's output and the local replies of the filters after it.
--
-- Requests: the official SDK sends array query parameters as `include[]=x`; the transcoder only
-- maps `include=x` onto a `repeated string include` field.
--
-- Responses: every error leaves as OpenAI's `{"error": {"message", "type", "param", "code"}}`:
--   * a gRPC error that carries `x-openai-error` (the server's OpenAI body) gets it as its body;
--   * any other gRPC error gets a body built from `grpc-message`;
--   * the transcoder's 400 for a wrongly typed field (already shaped by local_reply_config) gets
--     the field path as `param`.
-- Leftover gRPC headers (`grpc-status`, `grpc-message`, ...) are removed from every response:
-- route-level header removal runs too early to see the ones the transcoder adds.

local GRPC_HEADERS = {
  "grpc-status", "grpc-message", "grpc-status-details-bin", "grpc-accept-encoding", "grpc-encoding",
}

local function json_string(s)
  local escaped = s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    if c == "\n" then return "\\n" end
    if c == "\t" then return "\\t" end
    return string.format("\\u%04x", c:byte())
  end)
  return '"' .. escaped .. '"'
end

-- gRPC percent-encodes `grpc-message` (RFC 3986 style, for non-ASCII and control bytes).
local function percent_decode(s)
  return (s:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

local function error_type(status)
  if status >= 500 then return "server_error" end
  return "invalid_request_error"
end

-- The transcoder names fields by their protobuf path; OpenAI names the JSON parameter. Map entries
-- (`metadata[0].value`) become the map, and the `message.` prefix of routes whose JSON body is one
-- field of the request (`body: "message"`) goes.
local function openai_param(path)
  local param = path:gsub("^message%.", "")
  return (param:gsub("%[%d+%]%.value$", ""):gsub("%[%d+%]%.key$", ""))
end

local function replace_body(handle, headers, body)
  handle:body(true):setBytes(body)
  headers:replace("content-type", "application/json")
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local path = headers:get(":path")
  local query_start = path and path:find("?", 1, true)
  if query_start then
    local query = path:sub(query_start)
    local fixed = query:gsub("%[%]=", "="):gsub("%%5[Bb]%%5[Dd]=", "=")
    if fixed ~= query then
      headers:replace(":path", path:sub(1, query_start - 1) .. fixed)
    end
  end
end

function envoy_on_response(handle)
  local headers = handle:headers()
  local status = tonumber(headers:get(":status")) or 500
  local grpc_status = headers:get("grpc-status")
  local grpc_message = headers:get("grpc-message")
  local openai_error = headers:get("x-openai-error")
  local http_status = headers:get("x-http-status")
  for _, name in ipairs(GRPC_HEADERS) do
    headers:remove(name)
  end

  if http_status ~= nil then
    -- A status no gRPC code maps to (413 for an upload over the limit), set by the server.
    headers:remove("x-http-status")
    if http_status:match("^%d%d%d$") then headers:replace(":status", http_status) end
  end
  if openai_error ~= nil then
    headers:remove("x-openai-error")
    replace_body(handle, headers, openai_error)
  elseif grpc_status ~= nil and grpc_status ~= "0" and status >= 400 then
    local message = percent_decode(grpc_message or "")
    if message == "" then message = "gRPC status " .. grpc_status end
    replace_body(handle, headers, '{"error":{"message":' .. json_string(message) .. ',"type":"'
      .. error_type(status) .. '","param":null,"code":null}}')
  elseif status == 400 and grpc_status == nil then
    -- A local reply of the transcoder, e.g. `tools[0].type: invalid value 3 for type TYPE_STRING`.
    local body = handle:body()
    if body == nil then return end
    local text = body:getBytes(0, body:length())
    local param = text:match('"message":"([%w_%.%[%]]+): invalid value ')
    if param ~= nil then
      text = text:gsub('"param":null', '"param":"' .. openai_param(param) .. '"', 1)
      text = text:gsub('"code":null', '"code":"invalid_type"', 1)
      body:setBytes(text)
    end
  end
end
