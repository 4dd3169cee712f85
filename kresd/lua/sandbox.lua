-- kresd-py sandbox: kresd 5.x config sugar, constants, the table printer.
-- Owns: Lua-side helpers the engine (kresd/engine.py) installs once per
-- runtime: wrapping Python bindings into Lua functions that raise Lua errors
-- at the caller's line, module proxy tables, the protected-global sandbox
-- (`net = {...}`, `modules = {...}`), and krprint-like pretty printing.
-- Must not: touch the network, files or the cache (Python bindings do).
local bridge = ...   -- a table of Python callables given by the engine

-- Constants (kresd: times are in milliseconds)
kB = 1024
MB = 1024 * kB
GB = 1024 * MB
sec = 1000
second = sec
minute = 60 * sec
min = minute
hour = 60 * minute
day = 24 * hour

local pycall = bridge.invoke
local pywrapped = setmetatable({}, { __mode = 'k' })
local unpack = unpack or table.unpack

-- Wrap a Python callable: errors become Lua errors at the caller's line.
-- `strip` is a table: a leading argument rawequal to it is dropped (colon syntax).
local function wrap(pyfn, strip)
	local f = function(...)
		local r
		if strip ~= nil and select('#', ...) > 0 and rawequal((...), strip) then
			r = { pycall(pyfn, select(2, ...)) }
		else
			r = { pycall(pyfn, ...) }
		end
		if not r[1] then error(r[2], 2) end
		return unpack(r, 2, table.maxn(r))
	end
	pywrapped[f] = pyfn
	return f
end

local function unwrap(f)
	return pywrapped[f]
end

-- A module's global table: fields from lua_api, reads/writes of other keys
-- go to the module (lua_get / lua_set or config({key = value})).
local function module_proxy(name, fields, getter, setter)
	local t = {}
	for k, v in pairs(fields) do
		if type(v) == 'userdata' and bridge.is_callable(v) then
			rawset(t, k, wrap(v, t))
		else
			rawset(t, k, v)
		end
	end
	return setmetatable(t, {
		__index = function(_, k) return getter(name, k) end,
		__newindex = function(_, k, v) setter(name, k, v) end,
		__tostring = function() return 'module ' .. name end,
	})
end

-- Pretty printer close to kresd 5.6's krprint: a Lua-literal-like rendering.
local function is_array(t)
	local n = 0
	for _ in pairs(t) do n = n + 1 end
	return n == #t
end

local function render(v, indent, seen)
	local tv = type(v)
	if tv == 'string' then return string.format('%q', v) end
	if tv ~= 'table' then return tostring(v) end
	if seen[v] then return '{...}' end
	seen[v] = true
	if next(v) == nil then seen[v] = nil; return '{}' end
	local pad = string.rep('    ', indent + 1)
	local out = {}
	if is_array(v) then
		for _, x in ipairs(v) do table.insert(out, pad .. render(x, indent + 1, seen) .. ',') end
	else
		local keys = {}
		for k in pairs(v) do table.insert(keys, k) end
		table.sort(keys, function(a, b)
			if type(a) == type(b) and (type(a) == 'number' or type(a) == 'string') then return a < b end
			return type(a) < type(b)
		end)
		for _, k in ipairs(keys) do
			local ks
			if type(k) == 'string' then ks = string.format('[%q]', k) else ks = '[' .. tostring(k) .. ']' end
			table.insert(out, pad .. ks .. ' = ' .. render(v[k], indent + 1, seen) .. ',')
		end
	end
	seen[v] = nil
	return '{\n' .. table.concat(out, '\n') .. '\n' .. string.rep('    ', indent) .. '}'
end

function table_print(...)
	local parts = {}
	for i = 1, select('#', ...) do
		table.insert(parts, render((select(i, ...)), 0, {}))
	end
	return table.concat(parts, '\n')
end

-- The config sandbox (kresd sandbox.lua make_sandbox): assigning a table to a
-- protected global copies its items into the existing table, so
-- `net = {'addr'}` listens and `modules = {'stats'}` loads.
local protected = { worker = true, env = true, cache = true, modules = true, net = true,
	trust_anchors = true }
local G = _G
local sandbox = setmetatable({}, {
	__index = G,
	__newindex = function(_, k, v)
		if protected[k] and type(v) == 'table' and type(G[k]) == 'table' then
			for k2, v2 in pairs(v) do G[k][k2] = v2 end
		else
			G[k] = v
		end
	end,
})

return { wrap = wrap, unwrap = unwrap, module_proxy = module_proxy, sandbox = sandbox,
	render = render }
