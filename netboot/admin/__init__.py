"""The admin console and API: what a browser or a site's tools may see and change."""
