-- raw-size (pasted into the quarantine's scripts): the bytes of a quarantine entry's raw text, from
-- the field list XRANGE gives ({name, value, name, value, ...}); 0 when it has none.
local function rawSize(fields)
  for i = 1, #fields, 2 do
    if fields[i] == 'raw' then return #fields[i + 1] end
  end
  return 0
end
