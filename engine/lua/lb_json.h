/* lb_json: Lua values as JSON text and back, for the info that BO evaluations carry into their
 * journal. Numbers are written so that they read back exactly, object keys in sorted order (the
 * same table gives the same text in every run); a table with keys 1..n is an array, any other an
 * object (integer keys written as strings). */
#ifndef BOENGINE_LB_JSON_H
#define BOENGINE_LB_JSON_H

#include <lua.h>

/* Pushes the JSON text of the value at idx (on one line) and returns it. Raises lb_error
 * ("what: ...") for what JSON cannot hold: functions, userdata, threads, numbers that are not
 * finite, keys other than strings and integers, tables nested more than 16 deep. */
const char *lb_json_encode(lua_State *L, int idx, const char *what);

/* Pushes the Lua value of JSON text: arrays as lists, objects as tables, integral numbers below
 * 2^53 as integers, null as nil. Raises lb_error ("what: ...") for text that is not JSON. */
void lb_json_push(lua_State *L, const char *text, const char *what);

#endif
