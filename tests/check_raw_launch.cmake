# Fails when a kernel file launches with raw <<< >>>: kernels launch through
# reel::launch_kernel (kernels/cuda/launch.h), the one place both the nvcc build and the SIMT
# emulation understand.
file(GLOB_RECURSE files ${SOURCE_DIR}/kernels/*.cu ${SOURCE_DIR}/kernels/*.h
     ${SOURCE_DIR}/kernels/*.cpp)
set(bad "")
foreach(f ${files})
  if(f MATCHES "/kernels/cuda/launch\\.h$")
    continue()
  endif()
  file(STRINGS ${f} hits REGEX "<<<")
  if(hits)
    list(APPEND bad "${f}: ${hits}")
  endif()
endforeach()
if(bad)
  message(FATAL_ERROR "raw <<< >>> launches outside kernels/cuda/launch.h:\n${bad}")
endif()
list(LENGTH files n)
message(STATUS "no raw launches in ${n} kernel files")
