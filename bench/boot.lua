-- wrk script: GET /boot/ipxe for the bench fleet's machines in turn
-- (MACs 02:00:00:00:00:00 ... as bench/gen.py writes them).
local n = 0
local machines = tonumber(os.getenv("MACHINES") or "10000")
request = function()
  local i = n % machines
  n = n + 1
  local mac = string.format("02-00-00-%02x-%02x-%02x", math.floor(i / 65536) % 256, math.floor(i / 256) % 256, i % 256)
  return wrk.format("GET", "/boot/ipxe?mac=" .. mac)
end
