# packaging.cmake - what `cmake --install` puts under share/, and the Debian
# package (`cpack -G DEB` in a build tree, or scripts/install --deb).
#
# The program files (bin/flowbus, libexec/flowbus/, the library, its header and
# flowbus.pc) are installed by the CMakeLists of their folders; this file adds
# the user's documents and examples, which a package must carry too:
#   share/doc/flowbus/       README.md and docs/*.md
#   share/flowbus/workflows  the shipped workflows (the disk monitor, ...)
#   share/flowbus/broker-config  mosquitto configurations for a broker of your own
#   share/flowbus/systemd    the units: a flow as a service (flowbus@), an agent (flowbus-agent)
# share/flowbus/ is also where the web UI's files go when it is installed, and
# share/flowbus/python holds the Python SDK (sdk/python/CMakeLists.txt).

install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}
  FILES_MATCHING PATTERN "*.md")
install(DIRECTORY ${PROJECT_SOURCE_DIR}/workflows/ DESTINATION ${CMAKE_INSTALL_DATADIR}/flowbus/workflows
  FILES_MATCHING PATTERN "*.yaml")
install(DIRECTORY ${PROJECT_SOURCE_DIR}/broker-config/
  DESTINATION ${CMAKE_INSTALL_DATADIR}/flowbus/broker-config)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/systemd/ DESTINATION ${CMAKE_INSTALL_DATADIR}/flowbus/systemd)

# The Debian package. One package holds the coordinator, the plugins, the SDK
# (library, header, pkg-config file) and the documents: flowbus is small, and
# a plugin author needs the header as much as a user needs the coordinator.
# The shared-library dependencies are computed by dpkg-shlibdeps from the
# binaries, except the two opened with dlopen; mosquitto is needed for the
# private broker, python3-paho-mqtt only by the Python plugins and SDK.
set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "flowbus")
set(CPACK_PACKAGE_VENDOR "flowbus")
set(CPACK_PACKAGE_CONTACT "flowbus maintainers <flowbus@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "workflows of tasks that are processes talking over MQTT")
set(CPACK_PACKAGE_DESCRIPTION "flowbus runs workflows described in YAML: every task is its own
process (a plugin), and the processes pass named variables over an MQTT
broker. One-shot runs and reactive flows; the C SDK, a Python SDK and a
protocol any language can speak.")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION "utils")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# A triggers file that runs ldconfig when libflowbus.so.N is installed or removed.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
# libflowbus opens libcurl (sdk/src/auth/auth_http.c) and, on the Paho
# backend, Paho (sdk/src/bus/paho_load.c) with dlopen, so dpkg-shlibdeps
# cannot see them: named here. libmosquitto (the default backend) is linked.
if(FLOWBUS_MQTT STREQUAL "paho")
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "mosquitto, libpaho-mqtt1.3, libcurl4")
else()
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "mosquitto, libcurl4")
endif()
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "python3-paho-mqtt, mosquitto-clients")
# dpkg-shlibdeps must find the build tree's own libflowbus.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${CMAKE_LIBRARY_OUTPUT_DIRECTORY})
include(CPack)
