/*
 * lua: runs a tenant's Lua script. At start it loads the script (argv[1],
 * default /handler.lua) once, so its top-level code is the function's
 * initialisation (and is captured by a snapshot); then each invocation calls
 * the script's global `handle(payload)` with the request as a string and
 * returns the string it returns. A Lua error, or a non-string result, fails
 * the invocation with status 1 and the message as the response. A script
 * that does not load ends the handler (exit 1): an initialisation error.
 * Lua's print() goes to stderr (the SDK keeps stdout for frames), i.e. to the
 * function's log.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "sdk/ember_handler.h"

static int call_handle(const struct ember_request *req,
		       struct ember_response *resp, void *ctx)
{
	lua_State *L = ctx;
	const char *out;
	size_t n;
	int ret = 0;

	lua_settop(L, 0);
	if (lua_getglobal(L, "handle") != LUA_TFUNCTION) {
		ember_response_puts(resp, "handler.lua defines no function handle(payload)");
		return 1;
	}
	lua_pushlstring(L, (const char *)req->data, req->len);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
		out = lua_tolstring(L, -1, &n);
		if (!out)
			out = "(error object is not a string)", n = 30;
		ember_response_append(resp, out, n);
		ret = 1;
	} else if (lua_type(L, -1) != LUA_TSTRING &&
		   lua_type(L, -1) != LUA_TNUMBER) {
		ember_response_puts(resp, "handle() must return a string");
		ret = 1;
	} else {
		out = lua_tolstring(L, -1, &n);
		ret = ember_response_append(resp, out, n) ? 1 : 0;
	}
	lua_settop(L, 0);
	return ret;
}

int main(int argc, char **argv)
{
	const char *script = argc > 1 ? argv[1] : "/handler.lua";
	lua_State *L;
	int ret;

	/* The script's top level may print(): keep that off the frames. */
	ember_stdout_protect();
	L = luaL_newstate();
	if (!L) {
		ember_log("lua: cannot create a Lua state");
		return 1;
	}
	luaL_openlibs(L);
	if (luaL_dofile(L, script) != LUA_OK) {
		ember_log("lua: loading %s: %s", script, lua_tostring(L, -1));
		lua_close(L);
		return 1;
	}
	ret = ember_handler_run(call_handle, L);
	lua_close(L);
	return ret;
}
