/* l_report: the `report` Lua module: result tables (report.table → CSV and Markdown), figures
 * (report.plot, report.figure), animations (report.gif), grids of images (report.montage), and
 * report.inspect to check an image file; each output records the run's provenance. */
#ifndef BOENGINE_L_REPORT_H
#define BOENGINE_L_REPORT_H

#include <lua.h>

int luaopen_report(lua_State *L);

#endif
