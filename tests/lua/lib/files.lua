-- files: reading back what experiments and the report module write, for the Lua tests.
local files = {}

-- The whole file, or nil when it cannot be opened.
function files.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a"); f:close(); return s
end

-- A CSV of report.table: its rows keyed by column name (numbers converted, "NaN" read as NaN), the
-- header as a list, and the provenance of its '#' lines ({seed = "1", ...}); nil when it is missing.
-- These tables hold no quoted cells.
function files.csv(path)
  local text = files.read(path)
  if not text then return nil end
  local rows, header, prov = {}, nil, {}
  for line in text:gmatch("[^\n]+") do
    if line:sub(1, 1) == "#" then
      local k, v = line:match("^# ([^:]+): (.*)$")
      if k then prov[k] = v end
    else
      local cells = {}
      for cell in (line .. ","):gmatch("([^,]*),") do cells[#cells + 1] = cell end
      if header then
        local row = {}
        for i, h in ipairs(header) do row[h] = cells[i] == "NaN" and 0 / 0 or tonumber(cells[i]) or cells[i] end
        rows[#rows + 1] = row
      else
        header = cells
      end
    end
  end
  return rows, header, prov
end

return files
