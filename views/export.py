"""(being written)"""

import streamlit as st

import ui

user = ui.require_user()
st.title("Coming soon")
