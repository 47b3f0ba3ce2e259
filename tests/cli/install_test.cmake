# `hippo --version` prints "hippo <project version>" and exits 0, both from the build tree and
# after `cmake --install BUILD_DIR --prefix PREFIX`, which must put the binary in PREFIX/bin.
# Run by ctest (tests/cli/CMakeLists.txt) with -DHIPPO, -DBUILD_DIR, -DPREFIX and -DVERSION.

function(expect_version binary)
  execute_process(COMMAND ${binary} --version
    RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE errors)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "${binary} --version exited with ${status}: ${output}${errors}")
  endif()
  string(STRIP "${output}" output)
  if(NOT output STREQUAL "hippo ${VERSION}")
    message(FATAL_ERROR "${binary} --version printed '${output}', expected 'hippo ${VERSION}'")
  endif()
endfunction()

expect_version(${HIPPO})

file(REMOVE_RECURSE ${PREFIX})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${PREFIX}
  RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE errors)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "cmake --install failed (${status}): ${output}${errors}")
endif()
if(NOT EXISTS ${PREFIX}/bin/hippo)
  message(FATAL_ERROR "cmake --install --prefix ${PREFIX} left no ${PREFIX}/bin/hippo")
endif()
expect_version(${PREFIX}/bin/hippo)
file(REMOVE_RECURSE ${PREFIX})
