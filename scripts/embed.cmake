# Turns the Lua file IN into a C header OUT holding its bytes as `static const char NAME[]`.
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" bytes "${bytes}")
file(WRITE ${OUT} "/* generated from ${IN} */\nstatic const char ${NAME}[] = {\n${bytes}};\n")
