# Compiler flags every pympipool C target gets: pmp_target_defaults(<target>).
set(PMP_WARNING_FLAGS -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
    -Wno-unused-parameter)
if(PYMPIPOOL_WERROR)
  list(APPEND PMP_WARNING_FLAGS -Werror)
endif()

set(PMP_SANITIZE_FLAGS "")
if(PYMPIPOOL_SANITIZE)
  set(PMP_SANITIZE_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
endif()

function(pmp_target_defaults target)
  target_compile_options(${target} PRIVATE ${PMP_WARNING_FLAGS} ${PMP_SANITIZE_FLAGS})
  if(PMP_SANITIZE_FLAGS)
    target_link_options(${target} PRIVATE ${PMP_SANITIZE_FLAGS})
  endif()
endfunction()
