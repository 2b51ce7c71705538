# Writes OUT with the engine version and git commit, touching it only when the text changes.
execute_process(COMMAND git -C ${SRC} rev-parse --short=12 HEAD
  OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
# "-dirty" when what the binary is built from differs from the commit (not results or docs, which
# training runs rewrite while the same binary keeps running experiments)
execute_process(COMMAND git -C ${SRC} status --porcelain --untracked-files=no -- engine CMakeLists.txt scripts/version.cmake scripts/embed.cmake
  OUTPUT_VARIABLE dirty OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT commit)
  set(commit "unknown")
elseif(dirty)
  set(commit "${commit}-dirty")
endif()
set(text "#define BOENGINE_VERSION \"${VERSION}\"\n#define BOENGINE_COMMIT \"${commit}\"\n")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT "${old}" STREQUAL "${text}")
  file(WRITE ${OUT} "${text}")
endif()
