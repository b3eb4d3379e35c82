# Fails when a C++ or CUDA source of the project differs from what clang-format makes of it
# (the repository's .clang-format). Fix with: clang-format -i <file>.
find_program(CLANG_FORMAT NAMES clang-format clang-format-14 REQUIRED)
set(files "")
foreach(dir apps bench core data kernels layers optim tests)
  file(GLOB_RECURSE more ${SOURCE_DIR}/${dir}/*.h ${SOURCE_DIR}/${dir}/*.cpp
       ${SOURCE_DIR}/${dir}/*.cu)
  list(APPEND files ${more})
endforeach()
execute_process(COMMAND ${CLANG_FORMAT} --dry-run -Werror ${files}
  WORKING_DIRECTORY ${SOURCE_DIR} RESULT_VARIABLE rc ERROR_VARIABLE err)
list(LENGTH files n)
if(rc)
  message(FATAL_ERROR "clang-format --dry-run -Werror found unformatted files "
    "(fix with clang-format -i):\n${err}")
endif()
message(STATUS "${n} files formatted as .clang-format says")
