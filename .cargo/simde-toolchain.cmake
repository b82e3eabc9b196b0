# v8x (the quickjs engine behind deno_core) builds a vendored WAMR whose CMake
# FetchContent would git-clone simde from GitHub. Point it at Debian's
# libsimde-dev headers instead so the build works offline.
set(FETCHCONTENT_SOURCE_DIR_SIMDE "/usr/include" CACHE PATH "simde from the system")
