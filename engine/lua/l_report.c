#include "lua/l_report.h"

#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "lua/l_tensor.h"
#include "lua/lb.h"
#include "report/anim.h"
#include "report/plot.h"
#include "report/raster.h"
#include "report/table.h"

/* Everything a call reads (numbers, strings made from numbers, C arrays) is kept alive in an
 * anchor table at a fixed stack slot until the C call is over. */
static void keep(lua_State *L, int anchor)
{
    lua_rawseti(L, anchor, (lua_Integer)lua_rawlen(L, anchor) + 1);
}

static void *scratch(lua_State *L, int anchor, size_t count, size_t elem)
{
    void *p = lb_scratch(L, count, elem);
    memset(p, 0, count * elem > 0 ? count * elem : 1);
    keep(L, anchor);
    return p;
}

/* ---- provenance ---- */

static const char *const DEFAULT_PROV[] = {"seed", "version", "commit", "script", "script_sha256", NULL};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The run's provenance from the global boengine table, then the caller's provenance = {...}
 * (sorted by key; a value replaces a default, false removes it). */
static prov_kv *read_provenance(lua_State *L, int opts, int anchor, int *n)
{
    int user = lua_getfield(L, opts, "provenance");
    int uidx = lua_gettop(L);
    if (user != LUA_TNIL && user != LUA_TTABLE)
        lb_error(L, "'provenance' must be a table of key = value, got %s", luaL_typename(L, uidx));
    int nuser = 0;
    if (user == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, uidx)) {
            lua_pop(L, 1);
            if (lua_type(L, -1) != LUA_TSTRING)
                lb_error(L, "provenance: keys must be strings, got %s", luaL_typename(L, -1));
            nuser++;
        }
    }
    prov_kv *kv = scratch(L, anchor, (size_t)(5 + nuser), sizeof *kv);
    *n = 0;
    if (lua_getglobal(L, "boengine") == LUA_TTABLE)
        for (int k = 0; DEFAULT_PROV[k]; k++) {
            int t = lua_getfield(L, -1, DEFAULT_PROV[k]);
            if (t == LUA_TSTRING || t == LUA_TNUMBER) {
                kv[*n].key = DEFAULT_PROV[k];
                kv[*n].value = luaL_tolstring(L, -1, NULL);
                keep(L, anchor);
                (*n)++;
            }
            lua_pop(L, 1);
        }
    lua_pop(L, 1);
    if (user == LUA_TTABLE) {
        const char **keys = scratch(L, anchor, (size_t)(nuser + 1), sizeof *keys);
        int m = 0;
        lua_pushnil(L);
        while (lua_next(L, uidx)) {
            lua_pop(L, 1);
            keys[m++] = lua_tostring(L, -1); /* the provenance table keeps it */
        }
        qsort(keys, (size_t)m, sizeof *keys, cmp_str);
        for (int i = 0; i < m; i++) {
            int t = lua_getfield(L, uidx, keys[i]);
            int slot = -1;
            for (int j = 0; j < *n; j++)
                if (strcmp(kv[j].key, keys[i]) == 0)
                    slot = j;
            if (t == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
                if (slot >= 0) {
                    memmove(&kv[slot], &kv[slot + 1], sizeof *kv * (size_t)(*n - slot - 1));
                    (*n)--;
                }
                lua_pop(L, 1);
                continue;
            }
            if (t != LUA_TSTRING && t != LUA_TNUMBER)
                lb_error(L, "provenance: '%s' must be a string or a number (false removes it), got %s", keys[i],
                         luaL_typename(L, -1));
            const char *v = luaL_tolstring(L, -1, NULL);
            keep(L, anchor);
            lua_pop(L, 1);
            if (slot < 0)
                slot = (*n)++;
            kv[slot].key = keys[i];
            kv[slot].value = v;
        }
    }
    lua_pop(L, 1);
    if (prov_check(kv, *n) != 0)
        lb_lib_error(L);
    return kv;
}

/* ---- field readers ---- */

/* A list of numbers (or a tensor, flattened) from field key of the table at t; NULL when absent. */
static double *read_numbers(lua_State *L, int t, const char *what, const char *key, int anchor, int *n)
{
    int type = lua_getfield(L, t, key);
    int idx = lua_gettop(L);
    double *v = NULL;
    *n = 0;
    if (type == LUA_TNIL) {
        lua_pop(L, 1);
        return NULL;
    }
    tensor *ts = lt_test(L, idx);
    if (ts) {
        if (ts->numel > 10000000)
            lb_error(L, "%s: '%s' has %lld numbers, too many to draw", what, key, (long long)ts->numel);
        *n = (int)ts->numel;
        v = scratch(L, anchor, (size_t)*n, sizeof *v);
        for (int i = 0; i < *n; i++)
            v[i] = ts->data[i];
    } else if (type == LUA_TTABLE) {
        lua_Unsigned len = lua_rawlen(L, idx);
        if (len > 10000000)
            lb_error(L, "%s: '%s' has %llu numbers, too many to draw", what, key, (unsigned long long)len);
        *n = (int)len;
        v = scratch(L, anchor, (size_t)*n, sizeof *v);
        for (int i = 0; i < *n; i++) {
            lua_rawgeti(L, idx, i + 1);
            int ok;
            v[i] = lua_tonumberx(L, -1, &ok);
            if (!ok)
                lb_error(L, "%s: %s[%d] is not a number (got %s)", what, key, i + 1, luaL_typename(L, -1));
            lua_pop(L, 1);
        }
    } else {
        lb_error(L, "%s: '%s' must be a list of numbers, got %s", what, key, luaL_typename(L, idx));
    }
    lua_pop(L, 1);
    return v;
}

/* A string that the table at t keeps alive, or NULL. */
static const char *read_text(lua_State *L, int t, const char *what, const char *key)
{
    int type = lua_getfield(L, t, key);
    const char *s = NULL;
    if (type == LUA_TSTRING)
        s = lua_tostring(L, -1);
    else if (type != LUA_TNIL)
        lb_error(L, "%s: '%s' must be a string, got %s", what, key, luaL_typename(L, -1));
    lua_pop(L, 1);
    return s;
}

static int32_t read_color(lua_State *L, int t, const char *what, int32_t def)
{
    const char *s = read_text(L, t, what, "color");
    int32_t rgb = def;
    if (s && plot_parse_color(s, &rgb) != 0)
        lb_error(L, "%s: %s", what, err_msg());
    return rgb;
}

static int read_choice(lua_State *L, int t, const char *what, const char *key, const char *const *names,
                       int def)
{
    const char *s = read_text(L, t, what, key);
    if (!s)
        return def;
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 0; names[i]; i++) {
        if (i)
            luaL_addstring(&b, ", ");
        luaL_addstring(&b, names[i]);
    }
    luaL_pushresult(&b);
    lb_error(L, "%s: unknown %s '%s' (known: %s)", what, key, s, lua_tostring(L, -1));
}

static const char *const STYLES[] = {"solid", "dashed", "dotted", NULL};
static const char *const KINDS[] = {"line", "step", "scatter", "band", "hist", "density", "qq", NULL};
static const char *const MARKERS[] = {"auto", "none", "circle", "square", "triangle", "diamond", NULL};
static const char *const LEGENDS[] = {"auto",       "none",        "upper right", "upper left",
                                      "lower left", "lower right", "outside",     NULL};

static void read_limits(lua_State *L, int t, const char *what, const char *key, double lim[2])
{
    int type = lua_getfield(L, t, key);
    if (type == LUA_TTABLE && lua_rawlen(L, -1) == 2) {
        for (int i = 0; i < 2; i++) {
            lua_rawgeti(L, -1, i + 1);
            int ok;
            lim[i] = lua_tonumberx(L, -1, &ok);
            if (!ok)
                lb_error(L, "%s: '%s' must be {min, max}", what, key);
            lua_pop(L, 1);
        }
    } else if (type != LUA_TNIL) {
        lb_error(L, "%s: '%s' must be {min, max}", what, key);
    }
    lua_pop(L, 1);
}

/* ---- plots ---- */

static const char *const SERIES_KEYS[] = {"kind",  "x",     "y",      "lo",   "hi",        "values",    "label",
                                          "color", "style", "marker", "width", "bins", "normalize", "bandwidth",
                                          NULL};
static const char *const LINE_KEYS[] = {"at", "color", "style", "label", NULL};
static const char *const NOTE_KEYS[] = {"x", "y", "text", "color", NULL};

static void read_series(lua_State *L, int t, const char *what, int anchor, plot_series *s)
{
    lb_check_keys(L, t, what, SERIES_KEYS, 0);
    plot_series_init(s, (plot_kind)read_choice(L, t, what, "kind", KINDS, PLOT_LINE));
    int nx, ny, nlo, nhi, nv;
    s->x = read_numbers(L, t, what, "x", anchor, &nx);
    s->y = read_numbers(L, t, what, "y", anchor, &ny);
    s->lo = read_numbers(L, t, what, "lo", anchor, &nlo);
    s->hi = read_numbers(L, t, what, "hi", anchor, &nhi);
    s->values = read_numbers(L, t, what, "values", anchor, &nv);
    const char *names[5] = {"x", "y", "lo", "hi", "values"};
    const void *arrays[5] = {s->x, s->y, s->lo, s->hi, s->values};
    int lens[5] = {nx, ny, nlo, nhi, nv}, first = -1;
    for (int k = 0; k < 5; k++) {
        if (!arrays[k])
            continue;
        if (first < 0)
            first = k;
        else if (lens[k] != lens[first])
            lb_error(L, "%s: '%s' has %d numbers, '%s' %d", what, names[first], lens[first], names[k], lens[k]);
    }
    s->n = first >= 0 ? lens[first] : 0;
    s->label = read_text(L, t, what, "label");
    s->color = read_color(L, t, what, PLOT_AUTO_COLOR);
    s->style = (plot_style)read_choice(L, t, what, "style", STYLES, PLOT_SOLID);
    s->marker = (plot_marker)read_choice(L, t, what, "marker", MARKERS, PLOT_MARKER_AUTO);
    s->width = lb_opt_number(L, t, what, "width", 0);
    s->bins = (int)lb_opt_integer(L, t, what, "bins", 0);
    s->normalize = lb_opt_boolean(L, t, what, "normalize", 0);
    s->bandwidth = lb_opt_number(L, t, what, "bandwidth", 0);
    if (lua_getfield(L, t, "bins") != LUA_TNIL && s->bins < 1)
        lb_error(L, "%s: 'bins' must be at least 1, got %d", what, s->bins);
    lua_pop(L, 1);
}

/* vlines / hlines: numbers, or tables {at =, color =, style =, label =}. */
static int read_reflines(lua_State *L, int t, const char *what, const char *key, int vertical, int anchor,
                         plot_refline *out, int max)
{
    int type = lua_getfield(L, t, key);
    int idx = lua_gettop(L), n = 0;
    if (type == LUA_TNUMBER) {
        lua_createtable(L, 1, 0);
        lua_pushvalue(L, idx);
        lua_rawseti(L, -2, 1);
        lua_replace(L, idx);
    } else if (type != LUA_TTABLE && type != LUA_TNIL) {
        lb_error(L, "%s: '%s' must be a list of positions or of {at =, color =, style =, label =}", what, key);
    }
    if (type != LUA_TNIL) {
        lua_pushvalue(L, idx);
        keep(L, anchor); /* the labels stay alive with it */
        n = (int)lua_rawlen(L, idx);
        if (n > max)
            lb_error(L, "%s: at most %d %s", what, max, key);
        for (int i = 0; i < n; i++) {
            plot_refline *r = &out[i];
            memset(r, 0, sizeof *r);
            r->vertical = vertical;
            r->color = PLOT_AUTO_COLOR;
            r->style = PLOT_DASHED;
            int et = lua_rawgeti(L, idx, i + 1);
            char w[160];
            snprintf(w, sizeof w, "%s: %s[%d]", what, key, i + 1);
            if (et == LUA_TNUMBER) {
                r->at = lua_tonumber(L, -1);
            } else if (et == LUA_TTABLE) {
                int e = lua_gettop(L);
                lb_check_keys(L, e, w, LINE_KEYS, 0);
                if (lua_getfield(L, e, "at") != LUA_TNUMBER)
                    lb_error(L, "%s: 'at' must be a number", w);
                r->at = lua_tonumber(L, -1);
                lua_pop(L, 1);
                r->color = read_color(L, e, w, PLOT_AUTO_COLOR);
                r->style = (plot_style)read_choice(L, e, w, "style", STYLES, PLOT_DASHED);
                r->label = read_text(L, e, w, "label");
            } else {
                lb_error(L, "%s: must be a number or {at =, color =, style =, label =}", w);
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return n;
}

static const char *const PANEL_KEYS[] = {"title", "xlabel", "ylabel", "series", "vlines", "hlines", "annotations",
                                         "xlog",  "ylog",   "xlim",   "ylim",   "legend", NULL};
static const char *const PLOT_KEYS[] = {"title", "xlabel", "ylabel", "series", "vlines", "hlines",
                                        "annotations", "xlog", "ylog", "xlim", "ylim", "legend",
                                        "path", "width", "height", "footer", "provenance", NULL};

/* what names the panel in messages ("report.plot", "panel 2"); prefix goes before its series
 * ("", "panel 2: "). */
static void read_panel(lua_State *L, int t, const char *what, const char *prefix, int anchor, plot_panel *p)
{
    plot_panel_init(p);
    p->title = read_text(L, t, what, "title");
    p->xlabel = read_text(L, t, what, "xlabel");
    p->ylabel = read_text(L, t, what, "ylabel");
    p->xlog = lb_opt_boolean(L, t, what, "xlog", 0);
    p->ylog = lb_opt_boolean(L, t, what, "ylog", 0);
    read_limits(L, t, what, "xlim", p->xlim);
    read_limits(L, t, what, "ylim", p->ylim);
    if (lua_getfield(L, t, "legend") == LUA_TBOOLEAN) {
        p->legend = lua_toboolean(L, -1) ? PLOT_LEGEND_AUTO : PLOT_LEGEND_NONE;
        lua_pop(L, 1);
    } else {
        lua_pop(L, 1);
        p->legend = (plot_legend)read_choice(L, t, what, "legend", LEGENDS, PLOT_LEGEND_AUTO);
    }
    char w[160];
    int type = lua_getfield(L, t, "series");
    int sidx = lua_gettop(L);
    if (type != LUA_TTABLE && type != LUA_TNIL)
        lb_error(L, "%s: 'series' must be a list of tables", what);
    if (type == LUA_TTABLE) {
        p->nseries = (int)lua_rawlen(L, sidx);
        if (p->nseries > 100)
            lb_error(L, "%s: at most 100 series, got %d", what, p->nseries);
        plot_series *series = scratch(L, anchor, (size_t)p->nseries, sizeof *series);
        for (int k = 0; k < p->nseries; k++) {
            snprintf(w, sizeof w, "%sseries %d", prefix, k + 1);
            if (lua_rawgeti(L, sidx, k + 1) != LUA_TTABLE)
                lb_error(L, "%s: must be a table {kind =, x =, y =, ...}", w);
            read_series(L, lua_gettop(L), w, anchor, &series[k]);
            lua_pop(L, 1);
        }
        p->series = series;
    }
    lua_pop(L, 1);
    const char *ctx = what;
    plot_refline *lines = scratch(L, anchor, 200, sizeof *lines);
    p->nlines = read_reflines(L, t, ctx, "vlines", 1, anchor, lines, 100);
    p->nlines += read_reflines(L, t, ctx, "hlines", 0, anchor, lines + p->nlines, 100);
    p->lines = lines;
    type = lua_getfield(L, t, "annotations");
    int aidx = lua_gettop(L);
    if (type != LUA_TTABLE && type != LUA_TNIL)
        lb_error(L, "%s: 'annotations' must be a list of {x =, y =, text =}", ctx);
    if (type == LUA_TTABLE) {
        p->nnotes = (int)lua_rawlen(L, aidx);
        if (p->nnotes > 100)
            lb_error(L, "%s: at most 100 annotations", ctx);
        plot_note *notes = scratch(L, anchor, (size_t)p->nnotes, sizeof *notes);
        for (int k = 0; k < p->nnotes; k++) {
            snprintf(w, sizeof w, "%s: annotations[%d]", ctx, k + 1);
            if (lua_rawgeti(L, aidx, k + 1) != LUA_TTABLE)
                lb_error(L, "%s: must be a table {x =, y =, text =}", w);
            int e = lua_gettop(L);
            lb_check_keys(L, e, w, NOTE_KEYS, 0);
            for (int c = 0; c < 2; c++) {
                if (lua_getfield(L, e, c ? "y" : "x") != LUA_TNUMBER)
                    lb_error(L, "%s: '%s' must be a number", w, c ? "y" : "x");
                (c ? &notes[k].y : &notes[k].x)[0] = lua_tonumber(L, -1);
                lua_pop(L, 1);
            }
            notes[k].text = read_text(L, e, w, "text");
            notes[k].color = read_color(L, e, w, PLOT_AUTO_COLOR);
            lua_pop(L, 1);
        }
        p->notes = notes;
    }
    lua_pop(L, 1);
}

static const char *check_path(lua_State *L, int t, const char *fn)
{
    const char *path = read_text(L, t, fn, "path");
    if (!path || !*path)
        lb_error(L, "'path' (the file to write) is required");
    return path;
}

static void read_size(lua_State *L, int t, const char *fn, plot_figure *f)
{
    f->width = (int)lb_opt_integer(L, t, fn, "width", 0);
    f->height = (int)lb_opt_integer(L, t, fn, "height", 0);
    f->footer = lb_opt_boolean(L, t, fn, "footer", 1);
}

static void write_figure(lua_State *L, const char *path, const plot_figure *f)
{
    if (plot_write(path, f) != 0)
        lb_lib_error(L);
    lua_pushstring(L, path);
}

/* report.plot{path =, title =, xlabel =, ylabel =, series = {...}, vlines =, hlines =, ...} */
static int r_plot(lua_State *L)
{
    lua_settop(L, 1);
    luaL_checktype(L, 1, LUA_TTABLE);
    lb_check_keys(L, 1, "report.plot", PLOT_KEYS, 0);
    lua_newtable(L);
    int anchor = lua_gettop(L);
    const char *path = check_path(L, 1, "report.plot");
    plot_panel *panel = scratch(L, anchor, 1, sizeof *panel);
    read_panel(L, 1, "report.plot", "", anchor, panel);
    plot_figure f;
    plot_figure_init(&f);
    read_size(L, 1, "report.plot", &f);
    f.panels = panel;
    f.npanels = 1;
    f.prov = read_provenance(L, 1, anchor, &f.nprov);
    write_figure(L, path, &f);
    return 1;
}

static const char *const FIGURE_KEYS[] = {"path",   "title",  "panels", "columns", "heights",    "sharex",
                                          "sharey", "width",  "height", "footer",  "provenance", NULL};

/* report.figure{path =, title =, panels = {{...}, ...}, columns =, heights =} */
static int r_figure(lua_State *L)
{
    lua_settop(L, 1);
    luaL_checktype(L, 1, LUA_TTABLE);
    lb_check_keys(L, 1, "report.figure", FIGURE_KEYS, 0);
    lua_newtable(L);
    int anchor = lua_gettop(L);
    const char *fn = "report.figure";
    const char *path = check_path(L, 1, fn);
    plot_figure f;
    plot_figure_init(&f);
    read_size(L, 1, fn, &f);
    f.title = read_text(L, 1, fn, "title");
    f.columns = (int)lb_opt_integer(L, 1, fn, "columns", 1);
    f.sharex = lb_opt_boolean(L, 1, fn, "sharex", 0);
    f.sharey = lb_opt_boolean(L, 1, fn, "sharey", 0);
    if (lua_getfield(L, 1, "panels") != LUA_TTABLE || lua_rawlen(L, -1) < 1)
        lb_error(L, "'panels' must be a non-empty list of panels");
    int pidx = lua_gettop(L);
    f.npanels = (int)lua_rawlen(L, pidx);
    if (f.npanels > 64)
        lb_error(L, "at most 64 panels, got %d", f.npanels);
    if (f.columns < 1 || f.columns > f.npanels)
        lb_error(L, "'columns' must be from 1 to the number of panels (%d), got %d", f.npanels, f.columns);
    plot_panel *panels = scratch(L, anchor, (size_t)f.npanels, sizeof *panels);
    for (int i = 0; i < f.npanels; i++) {
        char w[64], prefix[64];
        snprintf(w, sizeof w, "panel %d", i + 1);
        snprintf(prefix, sizeof prefix, "panel %d: ", i + 1);
        if (lua_rawgeti(L, pidx, i + 1) != LUA_TTABLE)
            lb_error(L, "%s: must be a table {title =, series =, ...}", w);
        lb_check_keys(L, -1, w, PANEL_KEYS, 0);
        read_panel(L, lua_gettop(L), w, prefix, anchor, &panels[i]);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    f.panels = panels;
    int rows = (f.npanels + f.columns - 1) / f.columns, nh;
    double *heights = read_numbers(L, 1, fn, "heights", anchor, &nh);
    if (heights && nh != rows)
        lb_error(L, "'heights' has %d numbers for %d rows of panels", nh, rows);
    f.heights = heights;
    f.prov = read_provenance(L, 1, anchor, &f.nprov);
    write_figure(L, path, &f);
    return 1;
}

/* ---- tables ---- */

static const char *const TABLE_KEYS[] = {"path", "title", "columns", "rows", "provenance", NULL};
static const char *const COLUMN_KEYS[] = {"name", "digits", NULL};

static void read_cell(lua_State *L, int idx, table_cell *c, int row, const char *col)
{
    int t = lua_type(L, idx);
    if (t == LUA_TNUMBER) {
        c->kind = TABLE_NUMBER;
        c->num = lua_tonumber(L, idx);
    } else if (t == LUA_TSTRING) {
        c->kind = TABLE_TEXT;
        c->text = lua_tostring(L, idx); /* the rows table keeps it */
    } else if (t == LUA_TBOOLEAN) {
        c->kind = TABLE_TEXT;
        c->text = lua_toboolean(L, idx) ? "true" : "false";
    } else if (t == LUA_TNIL) {
        c->kind = TABLE_EMPTY;
    } else {
        lb_error(L, "rows[%d], column '%s': a cell must be a number, a string, a boolean or nil, got %s", row, col,
                 luaL_typename(L, idx));
    }
}

/* report.table{path = "results/x", title =, columns = {"n", {name = "mean", digits = 3}}, rows = {...}} */
static int r_table(lua_State *L)
{
    lua_settop(L, 1);
    luaL_checktype(L, 1, LUA_TTABLE);
    lb_check_keys(L, 1, "report.table", TABLE_KEYS, 0);
    lua_newtable(L);
    int anchor = lua_gettop(L);
    const char *path = check_path(L, 1, "report.table");
    size_t plen = strlen(path);
    if (plen > 4 && strcmp(path + plen - 4, ".csv") == 0)
        plen -= 4;
    else if (plen > 3 && strcmp(path + plen - 3, ".md") == 0)
        plen -= 3;
    lua_pushlstring(L, path, plen);
    const char *base = lua_tostring(L, -1);
    keep(L, anchor);
    table_spec t = {0};
    t.title = read_text(L, 1, "report.table", "title");
    if (lua_getfield(L, 1, "columns") != LUA_TTABLE || lua_rawlen(L, -1) < 1)
        lb_error(L, "'columns' must be a non-empty list of names or {name =, digits =}");
    int cidx = lua_gettop(L);
    t.ncols = (int)lua_rawlen(L, cidx);
    table_column *cols = scratch(L, anchor, (size_t)t.ncols, sizeof *cols);
    for (int j = 0; j < t.ncols; j++) {
        int type = lua_rawgeti(L, cidx, j + 1);
        if (type == LUA_TSTRING) {
            cols[j].name = lua_tostring(L, -1);
        } else if (type == LUA_TTABLE) {
            char w[48];
            snprintf(w, sizeof w, "columns[%d]", j + 1);
            lb_check_keys(L, -1, w, COLUMN_KEYS, 0);
            cols[j].name = read_text(L, lua_gettop(L), w, "name");
            if (!cols[j].name)
                lb_error(L, "%s: 'name' is required", w);
            cols[j].digits = (int)lb_opt_integer(L, lua_gettop(L), w, "digits", 0);
            if (cols[j].digits < 1 && lua_getfield(L, -1, "digits") != LUA_TNIL)
                lb_error(L, "%s: 'digits' must be from 1 to 17", w);
        } else {
            lb_error(L, "columns[%d] must be a name or {name =, digits =}", j + 1);
        }
        lua_settop(L, cidx);
    }
    t.columns = cols;
    int rtype = lua_getfield(L, 1, "rows");
    int ridx = lua_gettop(L);
    if (rtype != LUA_TTABLE)
        lb_error(L, "'rows' must be a list of rows (lists in column order, or tables keyed by column name)");
    t.nrows = (int)lua_rawlen(L, ridx);
    table_cell *cells = scratch(L, anchor, (size_t)t.nrows * t.ncols, sizeof *cells);
    for (int i = 0; i < t.nrows; i++) {
        if (lua_rawgeti(L, ridx, i + 1) != LUA_TTABLE)
            lb_error(L, "rows[%d] must be a table", i + 1);
        int row = lua_gettop(L);
        int keyed = 0;
        lua_pushnil(L);
        while (lua_next(L, row)) {
            lua_pop(L, 1);
            if (lua_type(L, -1) == LUA_TSTRING) {
                keyed = 1;
                const char *k = lua_tostring(L, -1);
                int known = 0;
                for (int j = 0; j < t.ncols && !known; j++)
                    known = strcmp(k, cols[j].name) == 0;
                if (!known)
                    lb_error(L, "rows[%d]: no column named '%s'", i + 1, k);
            } else if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > t.ncols) {
                lb_error(L, "rows[%d]: %s is not a column (rows are lists of %d cells, or keyed by column name)",
                         i + 1, luaL_tolstring(L, -1, NULL), t.ncols);
            }
        }
        for (int j = 0; j < t.ncols; j++) {
            if (keyed)
                lua_getfield(L, row, cols[j].name);
            else
                lua_rawgeti(L, row, j + 1);
            if (keyed && lua_rawlen(L, row) > 0)
                lb_error(L, "rows[%d] mixes cells in column order with cells keyed by name", i + 1);
            read_cell(L, -1, &cells[(size_t)i * t.ncols + j], i + 1, cols[j].name);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    t.cells = cells;
    t.prov = read_provenance(L, 1, anchor, &t.nprov);
    if (table_write(base, &t) != 0)
        lb_lib_error(L);
    lua_pushfstring(L, "%s.csv", base);
    lua_pushfstring(L, "%s.md", base);
    return 2;
}

/* ---- animations, montages, inspection ---- */

static const char **read_paths(lua_State *L, int t, const char *key, int anchor, int *n)
{
    if (lua_getfield(L, t, key) != LUA_TTABLE || lua_rawlen(L, -1) < 1)
        lb_error(L, "'%s' must be a non-empty list of PNG paths", key);
    int idx = lua_gettop(L);
    *n = (int)lua_rawlen(L, idx);
    if (*n > 10000)
        lb_error(L, "'%s': at most 10000 images, got %d", key, *n);
    const char **paths = scratch(L, anchor, (size_t)*n, sizeof *paths);
    lua_pushvalue(L, idx);
    keep(L, anchor);
    for (int i = 0; i < *n; i++) {
        if (lua_rawgeti(L, idx, i + 1) != LUA_TSTRING)
            lb_error(L, "%s[%d] must be a path (a string), got %s", key, i + 1, luaL_typename(L, -1));
        paths[i] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return paths;
}

static const char *const GIF_KEYS[] = {"path", "frames", "delay", "last_delay", "loop", "provenance", NULL};

/* report.gif{path =, frames = {png paths}, delay = 0.5, last_delay =, loop = true} */
static int r_gif(lua_State *L)
{
    lua_settop(L, 1);
    luaL_checktype(L, 1, LUA_TTABLE);
    lb_check_keys(L, 1, "report.gif", GIF_KEYS, 0);
    lua_newtable(L);
    int anchor = lua_gettop(L);
    const char *fn = "report.gif";
    const char *path = check_path(L, 1, fn);
    anim_spec a = {0};
    a.frames = read_paths(L, 1, "frames", anchor, &a.nframes);
    a.delay = lb_opt_number(L, 1, fn, "delay", 0.5);
    a.last_delay = lb_opt_number(L, 1, fn, "last_delay", 0);
    if (lua_getfield(L, 1, "last_delay") != LUA_TNIL && !(a.last_delay > 0))
        lb_error(L, "'last_delay' must be a positive number of seconds");
    lua_pop(L, 1);
    a.loops = lb_opt_boolean(L, 1, fn, "loop", 1) ? 0 : -1;
    a.prov = read_provenance(L, 1, anchor, &a.nprov);
    if (anim_write_gif(path, &a) != 0)
        lb_lib_error(L);
    lua_pushstring(L, path);
    return 1;
}

static const char *const MONTAGE_KEYS[] = {"path", "images", "columns", "provenance", NULL};

/* report.montage{path =, images = {png paths}, columns =} */
static int r_montage(lua_State *L)
{
    lua_settop(L, 1);
    luaL_checktype(L, 1, LUA_TTABLE);
    lb_check_keys(L, 1, "report.montage", MONTAGE_KEYS, 0);
    lua_newtable(L);
    int anchor = lua_gettop(L);
    const char *path = check_path(L, 1, "report.montage");
    int n;
    const char **images = read_paths(L, 1, "images", anchor, &n);
    int columns = (int)lb_opt_integer(L, 1, "report.montage", "columns", n < 4 ? n : 4);
    int nprov;
    prov_kv *prov = read_provenance(L, 1, anchor, &nprov);
    if (raster_montage(path, images, n, columns, prov, nprov) != 0)
        lb_lib_error(L);
    lua_pushstring(L, path);
    return 1;
}

/* report.inspect(path) → {format =, width =, height =, frames =, colors =, ink =, delay =, loop =,
 * text = {key = value}} */
static int r_inspect(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    raster_info info;
    if (raster_inspect(path, &info) != 0)
        lb_lib_error(L);
    lua_createtable(L, 0, 9);
    lua_pushstring(L, info.format);
    lua_setfield(L, -2, "format");
    lua_pushinteger(L, info.width);
    lua_setfield(L, -2, "width");
    lua_pushinteger(L, info.height);
    lua_setfield(L, -2, "height");
    lua_pushinteger(L, info.frames);
    lua_setfield(L, -2, "frames");
    lua_pushinteger(L, info.colors);
    lua_setfield(L, -2, "colors");
    lua_pushnumber(L, info.ink);
    lua_setfield(L, -2, "ink");
    if (strcmp(info.format, "gif") == 0) {
        lua_pushnumber(L, info.delay);
        lua_setfield(L, -2, "delay");
        lua_pushboolean(L, info.loops >= 0);
        lua_setfield(L, -2, "loop");
    }
    lua_createtable(L, 0, info.ntext);
    for (int i = 0; i < info.ntext; i++)
        if (info.keys[i] && info.values[i]) {
            lua_pushstring(L, info.values[i]);
            lua_setfield(L, -2, info.keys[i]);
        }
    lua_setfield(L, -2, "text");
    raster_info_free(&info);
    return 1;
}

static const luaL_Reg report_funcs[] = {
    {"table", r_table},     {"plot", r_plot},       {"figure", r_figure}, {"gif", r_gif},
    {"montage", r_montage}, {"inspect", r_inspect}, {NULL, NULL},
};

int luaopen_report(lua_State *L)
{
    luaL_newlib(L, report_funcs);
    /* report.colors: name → "#rrggbb"; report.palette: the colours series take in turn */
    lua_newtable(L);
    lua_newtable(L);
    for (int i = 0; plot_color_names[i]; i++) {
        char hex[8];
        snprintf(hex, sizeof hex, "#%06x", (unsigned)plot_colors[i]);
        lua_pushstring(L, hex);
        lua_setfield(L, -3, plot_color_names[i]);
        if (i < 8) {
            lua_pushstring(L, hex);
            lua_rawseti(L, -2, i + 1);
        }
    }
    lua_setfield(L, -3, "palette");
    lua_setfield(L, -2, "colors");
    return 1;
}
