-- files: reading back what experiments and the report module write, for the Lua tests.
local files = {}

-- The whole file, or nil when it cannot be opened.
function files.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a"); f:close(); return s
end

-- A CSV of report.table: rows keyed by column name, the header, the provenance (report.read).
files.csv = report.read

return files
