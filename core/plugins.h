/*
 * plugins.h - finding plugin executables.
 *
 * A plugin called NAME is the executable flowbus-NAME, looked for in each
 * directory of FLOWBUS_PLUGIN_PATH, then next to the flowbus binary, then in
 * the installed libexec directory.
 */
#ifndef FLOWBUS_CORE_PLUGINS_H
#define FLOWBUS_CORE_PLUGINS_H

/*
 * Returns a malloc'd absolute path of the executable for plugin, or NULL when
 * none is found or the name is not a plain plugin name ([a-z0-9_-]). ctx is
 * unused; the signature matches wf_plugin_lookup_fn.
 */
char *plugins__lookup(void *ctx, const char *plugin);

/* Writes the search path, as a human-readable list, into buf (for error messages). */
void plugins__describe_path(char *buf, unsigned long len);

#endif
