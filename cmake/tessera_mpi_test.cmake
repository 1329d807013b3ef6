# tessera_add_mpi_test(NAME TARGET NP 1 2 4): runs a test binary under mpirun at each rank count.
# Ranks beyond the cores are oversubscribed; root is allowed (CI runs as root).
find_program(TESSERA_MPIEXEC NAMES mpirun mpiexec REQUIRED)
function(tessera_add_mpi_test name target)
  cmake_parse_arguments(ARG "" "" "NP" ${ARGN})
  foreach(np IN LISTS ARG_NP)
    add_test(NAME ${name}_np${np}
             COMMAND ${TESSERA_MPIEXEC} --oversubscribe -np ${np} $<TARGET_FILE:${target}>)
    set_tests_properties(${name}_np${np} PROPERTIES
      ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1"
      PROCESSORS ${np} TIMEOUT 300 LABELS mpi)
  endforeach()
endfunction()
